"""Network parts: backbone, encoder, relation network, decoder and the shared LEO core.

The optional switches of issue #16 add AttentionRelation and RelationRounds (model.relation,
model.relation_rounds) and TaskConditionedDecoder and MixtureDecoder (model.decoder)."""

from leo_lightning.models.backbone import Conv4, Flatten
from leo_lightning.models.decoder import Decoder
from leo_lightning.models.encoder import Encoder
from leo_lightning.models.leo import LEONet
from leo_lightning.models.mixture_decoder import MixtureDecoder
from leo_lightning.models.relation import RelationNetwork
from leo_lightning.models.relation_attention import AttentionRelation
from leo_lightning.models.relation_rounds import RelationRounds
from leo_lightning.models.resnet12 import ResNet12
from leo_lightning.models.task_decoder import TaskConditionedDecoder

__all__ = [
    "AttentionRelation",
    "Conv4",
    "Decoder",
    "Encoder",
    "Flatten",
    "LEONet",
    "MixtureDecoder",
    "RelationNetwork",
    "RelationRounds",
    "ResNet12",
    "TaskConditionedDecoder",
]
