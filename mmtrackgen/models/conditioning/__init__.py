from .caption_encoder import WordCaptionEncoder
from .category_embedding import CategoryTable, CLIPCategoryEmbedding
from .fourier import fourier_embedding, sinusoidal_positions
from .gated_grounding import GatedGrounding, NoGrounding
from .instance_enhancer import InstanceEnhancer
from .tracklet_conditioning import TrackletConditioning
from .tracklet_encoder import TrackletEncoder

__all__ = [
    'CategoryTable', 'CLIPCategoryEmbedding', 'fourier_embedding', 'sinusoidal_positions',
    'GatedGrounding', 'NoGrounding', 'InstanceEnhancer', 'TrackletConditioning', 'TrackletEncoder',
    'WordCaptionEncoder'
]
