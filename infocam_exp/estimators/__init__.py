"""MI estimators beside the classifier's. ``registry.estimate_mi(name, x, y, K, seed=)`` runs any
of them on the same N samples (``registry.ESTIMATORS``): the trained ones (``trained``: K-fold
cross-fitting, one training rule, a batched MLP trainer in ``ensemble``, losses and held-out terms
in ``objectives``), kNN (``knn``), the Gaussian plug-ins (``gaussian``) and Gaussian-copula MI
(``gcmi``). ``bounds`` holds the score-matrix bounds of a critic (InfoNCE, NWJ, DV);
``infocam_exp.mi_benchmark`` runs a list of estimators as one job."""
