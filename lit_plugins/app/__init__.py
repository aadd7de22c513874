"""The served app (a face): registration of our components in a LIT app, the WSGI safety
layer, the offline LIT client. Nothing below imports it."""
