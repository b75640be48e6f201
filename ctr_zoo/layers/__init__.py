"""ctr_zoo.layers: reusable Keras layers, one module per concept.

Interaction blocks: `CrossNet` (DCN-V2), `CrossNetMix` (DCN-Mix), `VectorCrossNet` (DCN v1),
`GatedCrossNet` (GDCN), `SelfMaskCrossNet` (DCNv3's linear and exponential networks),
`FeatureGate` and `BilinearFusion` (FinalMLP's stream gates and fusion),
`CompressedDotProduct` (CDot family), `CoActionUnit` (CAN), and the baselines'
`FactorizationMachine` (FM/DeepFM), `DotInteraction` (DLRM), `CIN` (xDeepFM),
`MultiHeadSelfAttention` (AutoInt). Building blocks: `FeatureEmbedding`,
`LinearLogit`, `MLP` (and `NumericFieldDense`, its first layer over a field
stack with numeric fields x_j v_j), the tower built from a `TowerConfig`,
`DenseFieldEmbedding` (numeric fields as fields x_j v_j), `SequencePooling`
and `SequenceMask`. All are registered as "ctr_zoo>ClassName".
"""

from ctr_zoo.layers.attention import MultiHeadSelfAttention
from ctr_zoo.layers.bilinear_fusion import BilinearFusion
from ctr_zoo.layers.cin import CIN
from ctr_zoo.layers.co_action import CoActionUnit, co_action_param_width
from ctr_zoo.layers.compressed_dot import CompressedDotProduct
from ctr_zoo.layers.cross_net import CrossNet
from ctr_zoo.layers.cross_net_mix import CrossNetMix
from ctr_zoo.layers.cross_net_v1 import VectorCrossNet
from ctr_zoo.layers.dot_interaction import DotInteraction
from ctr_zoo.layers.embedding import FeatureEmbedding
from ctr_zoo.layers.feature_gate import FeatureGate
from ctr_zoo.layers.fm import FactorizationMachine
from ctr_zoo.layers.gated_cross_net import GatedCrossNet
from ctr_zoo.layers.initializers import clone_initializer
from ctr_zoo.layers.linear import LinearLogit
from ctr_zoo.layers.mlp import MLP, NumericFieldDense
from ctr_zoo.layers.numeric_fields import DenseFieldEmbedding
from ctr_zoo.layers.self_mask_cross_net import SelfMaskCrossNet
from ctr_zoo.layers.sequence import SequenceMask, SequencePooling
from ctr_zoo.layers.tower import TowerConfig, build_tower

__all__ = [
    "BilinearFusion", "CIN", "CoActionUnit", "CompressedDotProduct", "CrossNet", "CrossNetMix",
    "DenseFieldEmbedding", "DotInteraction", "FactorizationMachine", "FeatureEmbedding",
    "FeatureGate", "GatedCrossNet", "LinearLogit", "MLP", "MultiHeadSelfAttention",
    "NumericFieldDense", "SelfMaskCrossNet", "SequenceMask", "SequencePooling", "TowerConfig",
    "VectorCrossNet", "build_tower", "clone_initializer", "co_action_param_width",
]
