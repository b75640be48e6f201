"""--folds, shared by the AUC benchmark and the scikit-learn anchor (defined once).

--folds=K runs K-fold cross-validation: fold f of the data (`data.split=kfold,
data.folds=K,data.fold=f`) is scored by a model fit on the other folds, for
every f; the records' data label is `<data>_<K>fold`. 0 keeps the setup's split.
"""

from absl import flags

flags.DEFINE_integer("folds", 0, "K-fold cross-validation with K folds: one record per fold, "
                     "data label <data>_<K>fold (0: the setup's own split).")
