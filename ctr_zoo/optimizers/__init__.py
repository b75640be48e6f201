"""ctr_zoo.optimizers: sparse AdaGrad, lazy Adam, FTRL, group lasso, LAMB, Lookahead, the split.

- ``Adagrad``: legacy Keras AdaGrad with vectorised sparse row updates (and a
  dense path for small, densely covered tables); bit-identical results.
- ``LazyAdam``: Adam whose sparse update reads and writes only the rows in the
  batch (untouched rows keep w, m and v); dense gradients as legacy Keras Adam.
- ``Ftrl``: FTRL-Proximal (vectorised sparse rows), paper parameters, n0 = 0.
- ``GroupLassoFtrl``: FTRL with a per-row group lasso (rows set exactly to 0).
- ``SplitOptimizer``: embedding tables on one optimizer, the rest on another.
- ``Lamb``, ``Lookahead``: dense optimizers tf-keras lacks.
- ``get(name_or_config)``: every optimizer above and Keras' by name.
- ``embedding_sparsity(model)``, ``prune_table(table)``: zero rows, pruned size.
"""

from ctr_zoo.optimizers.adagrad import Adagrad
from ctr_zoo.optimizers.ftrl import Ftrl
from ctr_zoo.optimizers.group_lasso_ftrl import GroupLassoFtrl
from ctr_zoo.optimizers.lamb import Lamb
from ctr_zoo.optimizers.lazy_adam import LazyAdam
from ctr_zoo.optimizers.lookahead import Lookahead
from ctr_zoo.optimizers.registry import get
from ctr_zoo.optimizers.registry import names
from ctr_zoo.optimizers.sparsity import embedding_sparsity
from ctr_zoo.optimizers.sparsity import prune_table
from ctr_zoo.optimizers.sparsity import table_sparsity
from ctr_zoo.optimizers.sparsity import TableSparsity
from ctr_zoo.optimizers.split import SplitOptimizer

__all__ = [
    "Adagrad", "Ftrl", "GroupLassoFtrl", "Lamb", "LazyAdam", "Lookahead", "SplitOptimizer", "TableSparsity",
    "embedding_sparsity", "get", "names", "prune_table", "table_sparsity",
]
