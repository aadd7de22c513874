"""What a test needs to build LIT's app in-process (no server): the path of
LIT's own built front end, which `LitApp` requires."""

import os

from lit_nlp import app as lit_app

CLIENT_ROOT = os.path.join(os.path.dirname(lit_app.__file__), "client", "build", "default")
