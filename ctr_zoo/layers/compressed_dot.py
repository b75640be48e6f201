"""Compressed dot products (CDot family): X (X^T Y) without an n x n matrix."""

import math
from typing import Any, Optional, Sequence, Union

import tensorflow as tf

from ctr_zoo import checks
from ctr_zoo.layers import graph_layer
from ctr_zoo.layers import initializers
from ctr_zoo.layers import shapes
from ctr_zoo.serialization import register

PROJECTIONS = ("random", "learned", "instance")


@register
class CompressedDotProduct(graph_layer.GraphLayer):
  """Compresses the fields with a projection Y and returns the compressed dots.

  For X in R^{B x n x d} (n fields of one width d) and Y in R^{n x k}:

    Z = Y^T X       in R^{B x k x d}   (compressed embeddings)
    D = X (X^T Y)   in R^{B x n x k}   (= X Z^T = (X X^T) Y; never builds X X^T)
    output = concat(flatten(Z), flatten(D)) in R^{B x (k d + n k)}

  Cost O(n k d) per example instead of O(n^2 d) for all pairwise dots.

  Projection Y (`projection`):
    "random":   fixed N(0, 1/k) entries, not trainable; drawn from `seed`
                (saved in the config and as a non-trainable weight). The
                Johnson-Lindenstrauss option: E[Y Y^T] = I, so E[D Y^T] = X X^T.
    "learned":  a trainable Y (initializer `kernel_initializer`, by default
                N(0, 1/k) seeded with `seed`).
    "instance": Y = softmax_n(X Q^T / sqrt(d)) per example, Q in R^{k x d}
                trainable queries (a softmax over the fields).
  Groups (`groups`, GroupCDot / CDotFlex): a partition of the field indices
  into G lists; group g has its own Y_g in R^{n_g x k_g}, so Y is block
  diagonal with k = sum_g k_g and Z = [Y_1^T X_1; ..; Y_G^T X_G]. Then
  `num_projections` is one int (the same k_g for each group) or a list of G
  ints (per-group k_g). Without groups there is one group of all n fields.

  Weights, per group g: "projection_{g}" = Y_g (n_g, k_g) for "random"
  (non-trainable) and "learned"; "query_{g}" = Q_g (k_g, d) for "instance".

  Implicit (higher) order: with `return_compressed=True` the layer returns
  (output, Z); feed concat([X, Z], axis=1) to the next block.

  Args:
    num_projections: int or list of int. k, or per-group k_g.
    projection: str. "random", "learned" or "instance". Defaults to "random".
    groups: list of lists of int, or None. A partition of range(n) into
      groups. Defaults to None (one group).
    seed: int. Seed of the random projection (and of the default initializer).
      Defaults to 0.
    kernel_initializer: initializer or None, for "learned" Y and "instance" Q.
      Defaults to None: N(0, 1/k_g) for Y, glorot_uniform (seeded) for Q.
    return_compressed: bool. Also return Z (B, k, d). Defaults to False.

  Input shape: (B, n, d), or a list of n field tensors (B, d) of one width.
  Output shape: (B, k d + n k) (and Z (B, k, d)).

  Example:
    >>> CompressedDotProduct(4)(tf.ones((2, 10, 8))).shape
    TensorShape([2, 72])

  References: random projections preserve pairwise geometry (the
  Johnson-Lindenstrauss lemma); Wukong's optimized FM (arXiv 2403.02545,
  X (X^T Y)); Meta's DotCompress; torchrec's DLRM_Projection.
  """

  def __init__(self,
               num_projections: Union[int, Sequence[int]],
               projection: str = "random",
               groups: Optional[Sequence[Sequence[int]]] = None,
               seed: int = 0,
               kernel_initializer: Any = None,
               return_compressed: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    if projection not in PROJECTIONS:
      raise ValueError(f"CompressedDotProduct projection must be one of {PROJECTIONS}, "
                       f"got {projection!r}")
    checks.positive_int(seed, "CompressedDotProduct seed", allow_zero=True)
    if groups is not None:
      groups = [list(g) for g in groups]
      if not groups or any(not g for g in groups):
        raise ValueError(f"CompressedDotProduct groups must be non-empty lists of field "
                         f"indices, got {groups!r}")
      for g in groups:
        for i in g:
          if isinstance(i, bool) or not isinstance(i, int) or i < 0:
            raise ValueError(f"CompressedDotProduct groups hold field indices (ints >= 0), "
                             f"got {i!r} in {groups!r}")
      flat = [i for g in groups for i in g]
      dupes = sorted({i for i in flat if flat.count(i) > 1})
      if dupes:
        raise ValueError(f"CompressedDotProduct groups must not overlap: field(s) {dupes} "
                         f"appear in more than one group of {groups!r}")
    num_groups = 1 if groups is None else len(groups)
    if isinstance(num_projections, (list, tuple)):
      ks = list(num_projections)
      if len(ks) != num_groups:
        raise ValueError(f"CompressedDotProduct num_projections {num_projections!r} gives "
                         f"{len(ks)} values for {num_groups} group(s)")
    else:
      ks = [num_projections] * num_groups
    for k in ks:
      if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"CompressedDotProduct num_projections must be ints >= 1, "
                         f"got {num_projections!r}")
    self.num_projections = (list(num_projections) if isinstance(num_projections, (list, tuple))
                            else num_projections)
    self.projection = projection
    self.groups = groups
    self.seed = seed
    self.kernel_initializer = (None if kernel_initializer is None
                               else tf.keras.initializers.get(kernel_initializer))
    self.return_compressed = bool(return_compressed)
    self._group_k = ks

  @property
  def total_projections(self) -> int:
    """k = sum of the per-group k_g."""
    return sum(self._group_k)

  def _projection_initializer(self, g: int, k: int):
    if self.projection == "random" or self.kernel_initializer is None:
      if self.projection == "instance":
        return tf.keras.initializers.GlorotUniform(seed=self.seed + g)
      return tf.keras.initializers.RandomNormal(stddev=1.0 / math.sqrt(k), seed=self.seed + g)
    return initializers.clone_initializer(self.kernel_initializer, g)

  @staticmethod
  def _stacked_shape(input_shape) -> tf.TensorShape:
    """(B, n, d) from a (B, n, d) shape or a list of n (B, d_i) field shapes."""
    if isinstance(input_shape, (list, tuple)) and input_shape and not isinstance(
        input_shape[0], (int, type(None))):
      field_shapes = [tf.TensorShape(s) for s in input_shape]
      widths = [s[-1] if s.rank else None for s in field_shapes]
      if any(s.rank != 2 for s in field_shapes) or len(set(widths)) != 1 or widths[0] is None:
        raise ValueError("CompressedDotProduct needs fields of one width d: got a list of field "
                         f"shapes {[str(s) for s in field_shapes]} (widths {widths}); project "
                         "them to one width first")
      return tf.TensorShape((field_shapes[0][0], len(field_shapes), widths[0]))
    return tf.TensorShape(input_shape)

  def build(self, input_shape):
    input_shape = self._stacked_shape(input_shape)
    shape = shapes.check_shape("CompressedDotProduct", input_shape,
                               "(batch, n_fields, d): fields of one width d", 3, (1, 2))
    n, d = int(shape[1]), int(shape[2])
    groups = self.groups if self.groups is not None else [list(range(n))]
    bad = sorted(i for g in groups for i in g if i >= n)
    missing = sorted(set(range(n)) - {i for g in groups for i in g})
    if bad or missing:
      raise ValueError(f"CompressedDotProduct groups must partition the {n} fields of input "
                       f"shape {shape}: out of range {bad}, not covered {missing}")
    self._field_groups = groups
    self.projections = []
    for g, (fields, k) in enumerate(zip(groups, self._group_k)):
      if self.projection == "instance":
        self.projections.append(self.add_weight(
            name=f"query_{g}", shape=(k, d),
            initializer=self._projection_initializer(g, k), trainable=True))
      else:
        self.projections.append(self.add_weight(
            name=f"projection_{g}", shape=(len(fields), k),
            initializer=self._projection_initializer(g, k),
            trainable=self.projection == "learned"))
    super().build(input_shape)

  def compress(self, x):
    """Returns (Z (B, k, d), D (B, n, k)) for X (B, n, d) or a list of n (B, d) fields."""
    if isinstance(x, (list, tuple)):
      x = tf.stack(x, axis=1)  # (B, n, d)
    x = tf.convert_to_tensor(x)  # (B, n, d)
    if not self.built:
      self.build(x.shape)
    d = x.shape[-1]
    zs = []
    for fields, weight in zip(self._field_groups, self.projections):
      if len(fields) == x.shape[1] and fields == list(range(len(fields))):
        xg = x  # (B, n_g, d)
      else:
        xg = tf.gather(x, fields, axis=1)  # (B, n_g, d)
      if self.projection == "instance":
        logits = tf.einsum("bnd,kd->bnk", xg, weight) / math.sqrt(d)  # (B, n_g, k_g)
        y = tf.nn.softmax(logits, axis=1)  # softmax over the fields
        zs.append(tf.einsum("bnk,bnd->bkd", y, xg))  # (B, k_g, d)
      else:
        zs.append(tf.einsum("nk,bnd->bkd", weight, xg))  # (B, k_g, d)
    z = zs[0] if len(zs) == 1 else tf.concat(zs, axis=1)  # (B, k, d)
    dots = tf.einsum("bnd,bkd->bnk", x, z)  # (B, n, k) = X (X^T Y)
    return z, dots

  def call(self, inputs):
    z, dots = self.compress(inputs)
    k, d = self.total_projections, z.shape[-1]
    n = dots.shape[1]
    out = tf.concat([tf.reshape(z, (-1, k * d)),  # (B, k d)
                     tf.reshape(dots, (-1, n * k))], axis=1)  # (B, k d + n k)
    if self.return_compressed:
      return out, z
    return out

  def compute_output_shape(self, input_shape):
    shape = self._stacked_shape(input_shape)
    k = self.total_projections
    out = tf.TensorShape((shape[0], k * shape[2] + shape[1] * k))
    if self.return_compressed:
      return out, tf.TensorShape((shape[0], k, shape[2]))
    return out

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_projections": self.num_projections,
        "projection": self.projection,
        "groups": self.groups,
        "seed": self.seed,
        "kernel_initializer": (None if self.kernel_initializer is None
                               else tf.keras.initializers.serialize(self.kernel_initializer)),
        "return_compressed": self.return_compressed,
    })
    return config
