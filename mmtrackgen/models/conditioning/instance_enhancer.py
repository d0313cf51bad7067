"""Instance Enhancer: per-instance features from the feature map, shared across frames.

TrackDiffusion's key component (method.md, "Instance Enhancer"). Given the output map of a
spatial transformer, (B*F, C, H, W) with frames as batch (index ``b * F + f``):

1. RoI-align every box (1x1, ``aligned=True``) on its own frame's map, all boxes of the batch in
   one RoIAlign call (:func:`roi_align_op`); invisible entries take a learned null feature
   (their boxes are pooled as empty boxes and the result dropped, so the layer needs no
   data-dependent shapes and no host synchronisation);
2. fuse with the tracklet-branch feature: MLP([roi ; track_feature]) -> C;
3. cross-frame instance attention: each instance attends over its F features, with sinusoidal
   frame positions (any F), which is what keeps one object looking the same across frames;
4. each frame's visual tokens cross-attend to that frame's visible enhanced instances; the
   result is added through ``tanh(alpha_attn)``, then a feed-forward through
   ``tanh(alpha_dense)``. Both gates start at 0, so the enhancer starts as the identity.

With ``position_freqs`` the step-4 queries and keys also get a learned projection of the
Fourier box embedding of the visual token's cell and of the instance's box (see
:mod:`.gated_grounding`), so a token can find the instances that cover it.

A frame with no visible instance is left exactly as it was (its update is multiplied by 0),
so an instance invisible in every frame has no effect and N = 0 is the identity.

The defaults are this project's design. The options ``fuse_layers``, ``frame_positions``,
``frame_ff``, ``norm_instances``, ``mask_invisible`` and ``roi_aligned`` also express the
authors' released "injector" (a 3-layer fusion MLP, a bare residual frame attention, un-normalised
and unmasked instance keys, unaligned RoIAlign), which runs inside the transformer blocks on the
block's tokens: :meth:`InstanceEnhancer.enhance_tokens` (see ``TrackletUNet3D``'s
``enhancer_placement``).
"""
import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.embeddings import get_timestep_embedding
from torch import nn

from .fourier import cell_and_box_codes, cells_in_boxes
from .gated_grounding import SharedMaskAttnProcessor, key_padding_bias
from .tracklet_conditioning import TrackletConditioning


def roi_align_op():
    """The RoIAlign kernel: torchvision's when it is installed, else mmcv's compiled op.

    Both take (K, 5) rois ``(frame, x1, y1, x2, y2)`` and implement aligned, adaptive-sampling
    average RoIAlign the same way. torchvision's is built for the installed torch and its CUDA;
    mmcv 2.1 publishes no wheels for current torch releases, and a source build without CUDA
    (as on CPU machines) has CPU kernels only.
    """
    try:
        from torchvision.ops import roi_align
    except ImportError:
        try:
            from mmcv.ops import roi_align
        except ImportError as error:
            raise ImportError('InstanceEnhancer needs RoIAlign: install torchvision, or mmcv with '
                              f'its compiled ops (mmcv.ops failed: {error})') from None
        return roi_align

    def torchvision_roi_align(input, rois, output_size, spatial_scale, sampling_ratio, pool_mode,
                              aligned):
        if pool_mode != 'avg':
            raise ValueError(f"torchvision's RoIAlign averages; pool_mode={pool_mode!r}")
        return roi_align(input, rois, output_size, spatial_scale, sampling_ratio, aligned)

    return torchvision_roi_align


class InstanceEnhancer(nn.Module):
    """Enhance a spatial transformer's output map with tracklet-consistent instance features.

    Args:
        channels: C, the channels of the feature map it enhances.
        track_dim: Dt, the width of ``TrackletConditioning.track_features``.
        num_heads: attention heads of the cross-frame and the visual->instance attention;
            must divide ``channels``.
        ff_mult: hidden width of the feed-forwards, as a multiple of C.
        position_freqs: K of the Fourier cell/box embedding added (through ``position``) to the
            step-4 queries and keys; None adds none.
        within_boxes: in step 4 a visual token attends only to the instances whose boxes cover
            its cell; tokens outside every box are left as they were.
        fuse_layers: linear layers of the step-2 fusion MLP (SiLU between, width C).
        frame_positions: add the frames' sinusoidal code before the step-3 attention.
        frame_ff: follow the step-3 attention with a pre-norm feed-forward.
        norm_instances: LayerNorm the instance features used as step-4 keys.
        mask_invisible: step 4 attends only to visible instances and leaves frames without one
            as they were (the default). False attends to every slot, null features included, as
            the authors' model does; then the number of padded slots changes the output.
        roi_aligned: RoIAlign with ``aligned=True`` (half-pixel offset); False is torchvision's
            default, which the authors' model used.
    """

    def __init__(self,
                 channels: int,
                 track_dim: int,
                 num_heads: int,
                 ff_mult: int = 4,
                 position_freqs: int | None = None,
                 within_boxes: bool = False,
                 fuse_layers: int = 2,
                 frame_positions: bool = True,
                 frame_ff: bool = True,
                 norm_instances: bool = True,
                 mask_invisible: bool = True,
                 roi_aligned: bool = True):
        super().__init__()
        self.roi_align = roi_align_op()  # resolved here: a missing kernel fails at build time
        for name, value in (('channels', channels), ('track_dim', track_dim),
                            ('num_heads', num_heads), ('ff_mult', ff_mult),
                            ('fuse_layers', fuse_layers),
                            ('position_freqs', 1 if position_freqs is None else position_freqs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f'InstanceEnhancer: `{name}` must be a positive int, got {value!r}.')
        if channels % num_heads != 0:
            raise ValueError(
                f'InstanceEnhancer: `num_heads` ({num_heads}) must divide `channels` ({channels}).')
        self.channels = channels
        self.track_dim = track_dim
        head_dim = channels // num_heads

        # 1. RoI features; invisible entries take this learned null feature.
        self.null_feature = nn.Parameter(torch.zeros(channels))
        # 2. Fusion with the tracklet branch.
        layers = [nn.Linear(channels + track_dim, channels)]
        for _ in range(fuse_layers - 1):
            layers += [nn.SiLU(), nn.Linear(channels, channels)]
        self.fuse = nn.Sequential(*layers)
        # 3. Cross-frame instance attention (a pre-norm transformer layer over frames).
        self.frame_norm1 = nn.LayerNorm(channels)
        self.frame_attn = Attention(query_dim=channels, heads=num_heads, dim_head=head_dim)
        if frame_ff:
            self.frame_norm2 = nn.LayerNorm(channels)
            self.frame_ff = FeedForward(channels, mult=ff_mult, activation_fn='geglu')
        # 4. Visual tokens -> instance features, through zero-initialised tanh gates.
        self.norm_visual = nn.LayerNorm(channels)
        self.norm_instance = nn.LayerNorm(channels) if norm_instances else nn.Identity()
        self.attn = Attention(
            query_dim=channels,
            heads=num_heads,
            dim_head=head_dim,
            processor=SharedMaskAttnProcessor())  # the (B*F, HW, N) mask, not copied per head
        self.norm_dense = nn.LayerNorm(channels)
        self.ff = FeedForward(channels, mult=ff_mult, activation_fn='geglu')
        self.alpha_attn = nn.Parameter(torch.tensor(0.0))
        self.alpha_dense = nn.Parameter(torch.tensor(0.0))
        self.position_freqs = position_freqs
        self.within_boxes = within_boxes
        self.frame_positions = frame_positions
        self.has_frame_ff = frame_ff
        self.mask_invisible = mask_invisible
        self.roi_aligned = roi_aligned
        self.position = None if position_freqs is None else nn.Linear(8 * position_freqs, channels)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fresh initialisation: torch defaults, null feature and gates at 0.

        Needed after diffusers' ``from_pretrained``, which builds models with ``torch.nn.init``
        switched off and so leaves layers missing from the checkpoint uninitialised.
        """
        for module in self.modules():
            if module is not self and hasattr(module, 'reset_parameters'):
                module.reset_parameters()
        self.null_feature.zero_()
        self.alpha_attn.zero_()
        self.alpha_dense.zero_()

    def forward(self, feature_map: torch.Tensor, objs: TrackletConditioning) -> torch.Tensor:
        """feature_map: (B*F, C, H, W) -> (B*F, C, H, W); RoIs pooled from the map itself."""
        height, width = feature_map.shape[-2:]
        x = feature_map.flatten(2).transpose(1, 2)  # (B*F, HW, C)
        x = self.enhance_tokens(x, feature_map, objs)  # (B*F, HW, C)
        return x.transpose(1, 2).unflatten(2, (height, width))  # (B*F, C, H, W)

    def enhance_tokens(self, x: torch.Tensor, feature_map: torch.Tensor,
                       objs: TrackletConditioning) -> torch.Tensor:
        """x: (B*F, HW, C) visual tokens of an (H, W) map -> (B*F, HW, C), with the instance
        features RoI-pooled from ``feature_map`` (B*F, C, H, W): the same tokens as a map, or,
        inside a transformer block, the map that entered its transformer."""
        batch_size, num_frames, num_slots = objs.visible.shape
        num_frames_batch, channels, height, width = feature_map.shape
        if x.shape != (num_frames_batch, height * width, channels):
            raise ValueError(
                f'InstanceEnhancer: tokens of shape {tuple(x.shape)} do not match the RoI map '
                f'{tuple(feature_map.shape)} (B*F, C, H, W).')
        if num_frames_batch != batch_size * num_frames:
            raise ValueError(
                f'InstanceEnhancer: the feature map holds {num_frames_batch} frames but the '
                f'tracklets {batch_size * num_frames} (B*F); tracklets must match the sample.')
        if channels != self.channels:
            raise ValueError(
                f'InstanceEnhancer: built for {self.channels} channels, got {channels}.')
        visible = objs.frame_major(objs.visible).bool()  # (B*F, N)
        if num_slots == 0:
            return x

        # 1. One RoI per (frame, instance), all in one call; null feature where invisible. An
        # invisible entry is pooled as an empty box (no samples: zeros, no gradient) and dropped,
        # which keeps shapes fixed: no boolean indexing, no host synchronisation.
        # Pooled in float32 at least: frame indices and pixel coordinates stay exact, and mmcv
        # has no bfloat16 kernels.
        pool_dtype = torch.promote_types(feature_map.dtype, torch.float32)
        boxes = objs.frame_major(objs.boxes).to(pool_dtype)  # (B*F, N, 4)
        boxes = boxes * boxes.new_tensor([width, height, width, height])  # (B*F, N, 4) pixels
        boxes = boxes.where(visible[..., None], 0.0)  # (B*F, N, 4)
        frame_index = torch.arange(num_frames_batch, device=boxes.device, dtype=pool_dtype)
        frame_index = frame_index[:, None, None].expand(-1, num_slots, 1)  # (B*F, N, 1)
        rois = torch.cat([frame_index, boxes], dim=-1).flatten(0, 1)  # (B*F*N, 5)
        roi_features = self.roi_align(
            feature_map.to(pool_dtype).contiguous(),
            rois,
            output_size=(1, 1),
            spatial_scale=1.0,
            sampling_ratio=0,
            pool_mode='avg',
            aligned=self.roi_aligned)  # (B*F*N, C, 1, 1)
        roi_features = roi_features.view(num_frames_batch, num_slots,
                                         channels).to(feature_map.dtype)  # (B*F, N, C)
        instances = roi_features.where(visible[..., None],
                                       self.null_feature.to(feature_map.dtype))  # (B*F, N, C)

        # 2. Fuse with the tracklet branch.
        track = objs.track_features.transpose(1, 2)  # (B, F, N, Dt)
        track = objs.frame_major(track).to(feature_map.dtype)  # (B*F, N, Dt)
        instances = self.fuse(torch.cat([instances, track], dim=-1))  # (B*F, N, C)

        # 3. Each instance attends over its own F frames.
        per_instance = instances.unflatten(0, (batch_size, num_frames))  # (B, F, N, C)
        per_instance = per_instance.transpose(1, 2).flatten(0, 1)  # (B*N, F, C)
        if self.frame_positions:
            frames = torch.arange(num_frames, device=feature_map.device)  # (F,)
            positions = get_timestep_embedding(
                frames, channels, flip_sin_to_cos=True, downscale_freq_shift=0)  # (F, C)
            per_instance = per_instance + positions.to(feature_map.dtype)  # (B*N, F, C)
        per_instance = per_instance + self.frame_attn(self.frame_norm1(per_instance))  # (B*N, F, C)
        if self.has_frame_ff:
            per_instance = per_instance + self.frame_ff(
                self.frame_norm2(per_instance))  # (B*N, F, C)
        instances = per_instance.unflatten(0, (batch_size, num_slots))  # (B, N, F, C)
        instances = instances.transpose(1, 2).flatten(0, 1)  # (B*F, N, C)

        # 4. Visual tokens cross-attend to their frame's visible instances, through the gates.
        # Rows of tokens that may see no instance (a frame without visible instances, or with
        # `within_boxes` a cell outside every box) attend to all slots, so no row is empty;
        # their update is multiplied by 0 below, so those tokens are left exactly as they were.
        if self.within_boxes:
            allowed = cells_in_boxes(objs.frame_major(objs.boxes), visible,
                                     (height, width))  # (B*F, HW, N)
        elif self.mask_invisible:
            allowed = visible[:, None, :]  # (B*F, 1, N)
        else:  # every slot, null features included, as the authors' model
            allowed = torch.ones_like(visible)[:, None, :]  # (B*F, 1, N)
        has_instance = allowed.any(dim=2, keepdim=True)  # (B*F, HW or 1, 1)
        keep = allowed | ~has_instance  # (B*F, HW or 1, N)
        frame_gate = has_instance.to(x.dtype)  # (B*F, HW or 1, 1)
        queries = self.norm_visual(x)  # (B*F, HW, C)
        keys = self.norm_instance(instances)  # (B*F, N, C)
        if self.position is not None:
            cells, box_codes = cell_and_box_codes(
                objs.frame_major(objs.boxes), (height, width),
                self.position_freqs)  # (HW, 8K), (B*F, N, 8K)
            queries = queries + self.position(cells.to(x.dtype))  # (B*F, HW, C)
            keys = keys + self.position(box_codes.to(x.dtype))  # (B*F, N, C)
        attended = self.attn(
            queries,  # (B*F, HW, C)
            encoder_hidden_states=keys,  # (B*F, N, C)
            attention_mask=key_padding_bias(keep, x.dtype),  # (B*F, HW or 1, N)
        )  # (B*F, HW, C)
        x = x + frame_gate * self.alpha_attn.tanh() * attended  # (B*F, HW, C)
        x = x + frame_gate * self.alpha_dense.tanh() * self.ff(self.norm_dense(x))  # (B*F, HW, C)
        return x
