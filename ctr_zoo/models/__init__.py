"""ctr_zoo.models: the model zoo, one module per model, plus a registry by name.

  from ctr_zoo import models
  models.names()   # every registered model name
  model = models.build("dcn_v2", fitted_spec, projection_dim=64,
                       embedding={"dim": 32}, tower={"dims": (256, 256)})
  model.logit_model            # same layers, logit output
  model.embedding_variables    # tables (sparse optimizer)
  model.dense_variables        # everything else

Every model is a `CTRModel` (see `ctr_zoo.models.base`): a functional Keras
model built from a fitted `FeatureSpec` and a config dataclass, assembled from
the stages in `ctr_zoo.models.parts` (embed -> interaction -> tower ->
combine), registered so `tf.keras.models.load_model` works after
`import ctr_zoo`.
"""

from ctr_zoo.models import base
from ctr_zoo.models import parts
from ctr_zoo.models.autoint import AutoInt, AutoIntConfig
from ctr_zoo.models.base import CTRModel, EmbeddingConfig, ModelConfigError, TowerConfig
from ctr_zoo.models.can import CAN, CANConfig
from ctr_zoo.models.cdot import CDot, CDotConfig
from ctr_zoo.models.dcn import DCN, DCNConfig
from ctr_zoo.models.dcn_mix import DCNMix, DCNMixConfig
from ctr_zoo.models.dcn_v2 import DCNV2, DCNV2Config
from ctr_zoo.models.dcnv3 import DCNv3, DCNv3Config
from ctr_zoo.models.deepfm import DeepFM, DeepFMConfig
from ctr_zoo.models.dlrm import DLRM, DLRMConfig
from ctr_zoo.models.dnn import DNN, DNNConfig
from ctr_zoo.models.fm import FM, FMConfig
from ctr_zoo.models.finalmlp import FinalMLP, FinalMLPConfig
from ctr_zoo.models.gdcn import GDCN, GDCNConfig
from ctr_zoo.models.lr import LogisticRegression, LRConfig
from ctr_zoo.models.registry import build, config_class, get, names, register_model
from ctr_zoo.models.wide_deep import WideDeep, WideDeepConfig
from ctr_zoo.models.xdeepfm import XDeepFM, XDeepFMConfig

__all__ = [
    "AutoInt", "AutoIntConfig", "CAN", "CANConfig", "CDot", "CDotConfig", "CTRModel", "DCN",
    "DCNConfig", "DCNMix", "DCNMixConfig", "DCNV2", "DCNV2Config", "DCNv3", "DCNv3Config", "DLRM",
    "DLRMConfig", "DNN", "DNNConfig", "DeepFM", "DeepFMConfig", "EmbeddingConfig", "FM",
    "FMConfig", "FinalMLP", "FinalMLPConfig", "GDCN", "GDCNConfig", "LRConfig",
    "LogisticRegression", "ModelConfigError", "TowerConfig", "WideDeep", "WideDeepConfig",
    "XDeepFM", "XDeepFMConfig", "build", "config_class", "get", "names", "register_model",
]
