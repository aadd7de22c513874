"""Attribution (LIT-free math): quadrature rules, integrated gradients, layer and neuron
conductance, gradient salience, IG baselines. numpy / torch only."""
