"""Network parts: backbone, encoder, relation network, decoder and the shared LEO core."""

from leo_lightning.models.backbone import Conv4, Flatten
from leo_lightning.models.decoder import Decoder
from leo_lightning.models.encoder import Encoder
from leo_lightning.models.leo import LEONet
from leo_lightning.models.relation import RelationNetwork

__all__ = ["Conv4", "Decoder", "Encoder", "Flatten", "LEONet", "RelationNetwork"]
