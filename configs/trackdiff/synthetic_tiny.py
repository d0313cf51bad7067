# The embedded default: a tiny TrackDiffusion on the synthetic world at the world's own resolution
# (8 frames of 64x64, up to 4 instances), sized to learn on 2 CPU cores. It diffuses in the
# latent space of the world's own autoencoder (64x64 -> 16x16x4), read from a local diffusers
# folder exactly as the full-size recipes read Stable Diffusion's VAE, and it reads the clip's
# caption (which names each object's colour and texture) through learned word embeddings.
# First train the autoencoder: python tools/train.py configs/autoencoder/synthetic_f4.py
_base_ = ['./synthetic_tiny_pixel32.py']

image_size = (64, 64)
autoencoder = 'work_dirs/synthetic_f4'  # its vae/ subfolder: the export of the run above
caption_vocabulary = [
    'a', 'an', 'and', 'of', 'no', 'two', 'three', 'four', 'video', 'objects', 'nothing', 'moving',
    'over', 'background', 'dark', 'light', 'grey', 'red', 'orange', 'yellow', 'green', 'cyan',
    'blue', 'purple', 'magenta', 'striped', 'dotted', 'checkered', 'square', 'circle', 'triangle',
    'cross', 'diamond', 'ring', 'squares', 'circles', 'triangles', 'crosses', 'diamonds', 'rings'
]

model = dict(
    data_preprocessor=dict(
        type='TrackDiffusionDataPreprocessor', vae=dict(pretrained=autoencoder)),
    caption_encoder=dict(
        type='WordCaptionEncoder', vocabulary=caption_vocabulary, embed_dim=64, max_length=24),
    generator=dict(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        # attention (grounding, enhancers) at 16x16 and 8x8 latents, none at 4x4
        down_block_types=('CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'),
        up_block_types=('UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'),
        block_out_channels=(64, 96, 128),
        norm_num_groups=16),
    caption_dropout=0.1,  # the empty caption is guidance's unconditional input
    # 10 DPM-Solver++ steps: on 8 held-out clips at 900 iterations, alignment iou50 0.45 vs
    # 0.29 with 10 DDIM steps (docs/training.md run 6)
    sampler='DPMSolverMultistepScheduler',
    num_inference_steps=10)

pipeline_resize = dict(type='ClipResize', scale=image_size)
train_pipeline = [
    dict(type='LoadTrackletClip'),
    pipeline_resize,
    dict(type='ClipRandomFlip', prob=0.5),
    dict(type='AssignInstanceSlots', num_slots={{_base_.num_slots}}, overflow='most_visible',
         shuffle=True),
    dict(type='DrawSlotBoxes'),  # self-tracking stage 1, switched off by SelfTrackingHook
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
test_pipeline = [
    dict(type='LoadTrackletClip'),
    pipeline_resize,
    dict(type='AssignInstanceSlots', num_slots={{_base_.num_slots}}, overflow='most_visible'),
    dict(type='TemplateCaption'),
    dict(type='PackClipInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
preview_clips = dict(
    type='TrackletClipDataset',
    data_root='data/synthetic/',
    ann_file='annotations/val_cocoformat.json',
    data_prefix=dict(img_path='val/'),
    metainfo=dict(classes={{_base_.classes}}),
    captions_file='annotations/captions.json',
    clip_length={{_base_.num_frames}},
    test_mode=True,
    pipeline=test_pipeline)
custom_hooks = [
    dict(type='SelfTrackingHook', switch_iter=1 / 3),  # clean clips for the last two thirds
    dict(type='SampleVisualizationHook', dataset=preview_clips, interval=150, num_clips=4),
]
