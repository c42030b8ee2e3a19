"""MI estimators beside the classifier's: variational bounds with a learned critic (``bounds``,
trained by ``systems.CriticSystem``), the kNN estimator (``knn``) and a Gaussian plug-in
(``gaussian``); ``direct`` runs the ones that train nothing."""
