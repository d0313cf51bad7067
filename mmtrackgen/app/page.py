"""The Gradio page: draw or load tracklets, preview them, generate, watch, score, download.

Every event function here only moves values between the page and the functions of
:mod:`.editor`, :mod:`.canvas`, :mod:`.media` and :class:`.session.PageModel`; input those
refuse comes back as a message in the page's message box (``#page-message``) and the page
keeps working.
"""
import os
import os.path as osp
from typing import Optional

from mmtrackgen.datasets.tracklets import TrackletAnnotationError
from mmtrackgen.generation.runner import GenerationInputError
from .canvas import canvas_value, rows_from_table, set_frame_from_canvas
from .editor import (KEYFRAME_COLUMNS, PAGE_CLIP_NAME, PageInputError, fit_layout, keyframes_to_layout,
                     layout_to_keyframes, parse_keyframes, read_layout_file)
from .media import display_scale, preview_strip
from .session import PageModel

# What a user can fix: shown as the message, never as a traceback.
USER_ERRORS = (PageInputError, GenerationInputError, TrackletAnnotationError)
MAX_CLIP_CHOICES = 200


def ok(text: str) -> str:
    return f'**OK**: {text}'


def problem(error: Exception) -> str:
    return f'**Problem**: {error}'


def dataset_clips(model: PageModel) -> tuple[str, list]:
    """(annotation file, clip layouts of the model's length) of the config's test split, when
    the file is there (the page offers them as starting layouts); ('', []) otherwise."""
    dataset = (model.cfg.get('test_dataloader') or {}).get('dataset') or {}
    if not dataset.get('ann_file'):
        return '', []
    path = osp.join(dataset.get('data_root') or '', dataset['ann_file'])
    if not osp.isfile(path):
        return path, []
    try:
        layouts = read_layout_file(path)
    except PageInputError:
        return path, []
    clips = []
    for layout in layouts:
        if layout.num_frames >= model.spec.num_frames:
            clips.append(fit_layout(layout, model.spec).copy(name=layout.name))
        if len(clips) >= MAX_CLIP_CHOICES:
            break
    return path, clips


def build_page(model: PageModel, title: str = 'mmtrackgen: tracklets to video'):
    """The page (a ``gradio.Blocks``) for ``model``."""
    import gradio as gr
    from gradio_image_annotation import image_annotator

    spec = model.spec
    height, width = spec.image_size
    scale = display_scale(spec.image_size, 320)
    last_frame = spec.num_frames - 1
    dataset_file, dataset_layouts = dataset_clips(model)
    by_name = {layout.name: layout for layout in dataset_layouts}
    labels = list(spec.classes) + [f'{c} {i}' for i in range(1, spec.num_slots + 1)
                                   for c in spec.classes]

    def layout_of(table, name=None):
        return keyframes_to_layout(parse_keyframes(rows_from_table(table), spec), spec, name)

    def show_frame(table, frame):
        return canvas_value(rows_from_table(table), int(frame), spec, scale)

    def set_frame(table, frame, canvas):
        try:
            rows = set_frame_from_canvas(
                rows_from_table(table), int(frame), (canvas or {}).get('boxes') or [], spec,
                scale)
        except USER_ERRORS as e:
            return gr.update(), gr.update(), problem(e)
        return rows, preview_or_none(rows), ok(
            f'frame {int(frame)} set from the canvas; {len(rows)} keyframe rows')

    def preview_or_none(rows):
        try:
            return preview_strip(layout_of(rows), spec.classes)
        except USER_ERRORS:
            return None

    def preview(table):
        try:
            layout = layout_of(table)
        except (*USER_ERRORS, ValueError) as e:
            return None, problem(e)
        shown = int(layout.visible.sum())
        return preview_strip(layout, spec.classes), ok(
            f'{layout.num_instances} instances, {shown} boxes over {layout.num_frames} frames')

    def load_clip(layout):
        rows = layout_to_keyframes(layout)
        try:
            strip = preview_strip(layout_of(rows, layout.name), spec.classes)
            message = ok(f"loaded clip '{layout.name}': {layout.num_instances} instances, "
                         f'{len(rows)} keyframe rows')
        except USER_ERRORS as e:  # loaded for editing, but not generatable as it is
            strip, message = None, problem(f"loaded clip '{layout.name}', but {e}")
        return rows, strip, message, show_frame(rows, 0), 0, layout.name

    def upload(file):
        """Loads the first clip of the file; a refused file is cleared from the upload box, so
        the next one can be dropped in."""
        nothing = (gr.update(), ) * 6
        if file is None:
            return nothing + (gr.update(), gr.update())
        path = file if isinstance(file, str) else file.name
        try:
            layouts = read_layout_file(path)
            fitted = [fit_layout(layout, spec) for layout in layouts]
        except USER_ERRORS as e:
            return nothing[:2] + (problem(e), ) + nothing[3:] + (gr.update(), None)
        uploaded.clear()
        uploaded.update({layout.name: layout for layout in fitted})
        choices = gr.update(choices=list(uploaded), value=fitted[0].name, visible=len(fitted) > 1)
        return load_clip(fitted[0]) + (choices, gr.update())

    uploaded: dict = {}

    def pick_uploaded(name):
        if name not in uploaded:
            return (gr.update(), ) * 6
        return load_clip(uploaded[name])

    def pick_dataset(name):
        if name not in by_name:
            return (gr.update(), ) * 6
        return load_clip(by_name[name])

    def clear():
        return [], None, ok('cleared'), show_frame([], 0), 0, PAGE_CLIP_NAME

    def generate(table, name, seed, steps, guidance, progress=gr.Progress()):
        empty = (None, None, None, None)
        try:
            layout = layout_of(table, name)
            progress((0, int(steps)), desc='sampling', unit='steps')
            result = model.generate(
                layout,
                seed=int(seed),
                steps=int(steps),
                guidance=float(guidance),
                progress=lambda done, total: progress((done, total), desc='sampling', unit='steps'))
        except (*USER_ERRORS, ValueError) as e:
            return empty + (problem(e), )
        except Exception as e:  # a failure of the model itself: said on the page, page lives on
            return empty + (problem(f'generation failed: {type(e).__name__}: {e}'), )
        summary = {name: {k: _round(v) for k, v in figures.items()}
                   for name, figures in result.scores.items()}
        table_out = {'headers': result.per_box_columns, 'data': result.per_box}
        return (result.video, summary, table_out, [result.video, result.gif, result.zip],
                ok(f'generated {result.frames.shape[0]} frames of {width}x{height} in '
                   f'{result.seconds:.1f} s (seed {result.seed}); left: the clip, right: the '
                   'layout drawn on it'))

    with gr.Blocks(title=title) as page:
        gr.Markdown(
            f'## {title}\n'
            f'Model `{osp.basename(model.config)}`: clips of {spec.num_frames} frames of '
            f'{width}x{height} pixels, at most {spec.num_slots} instances, categories '
            f'{", ".join(spec.classes)}. Draw boxes on keyframes (or load a layout), preview, '
            'generate. Boxes between keyframes are interpolated; an instance exists from its '
            'first keyframe to its last; a keyframe row with no box hides it in that frame.')
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab('Draw'):
                    frame = gr.Slider(
                        0, last_frame, value=0, step=1, label=f'keyframe (0..{last_frame})')
                    canvas = image_annotator(
                        show_frame([], 0),
                        label_list=labels,
                        label=f"boxes of this frame, labelled '<category> <id>' "
                        f'({width}x{height} shown {scale}x)',
                        sources=[],
                        image_type='numpy',
                        box_min_size=2,
                        elem_id='canvas')
                    set_button = gr.Button('Set this keyframe from the canvas', elem_id='set-frame')
                with gr.Tab('Load'):
                    file = gr.File(
                        label='tracklet JSON or CocoVID file (docs/tracklet_format.md)',
                        file_types=None,
                        type='filepath',
                        elem_id='layout-file')
                    uploaded_clip = gr.Dropdown(
                        [], label='clip of the uploaded file', visible=False, interactive=True)
                    dataset_clip = gr.Dropdown(
                        list(by_name),
                        label=f'or a clip of {dataset_file}' if by_name else
                        f'dataset clips: {dataset_file or "none"} not found',
                        interactive=bool(by_name))
                table = gr.Dataframe(
                    headers=list(KEYFRAME_COLUMNS),
                    datatype=['number', 'str', 'number', 'number', 'number', 'number', 'number'],
                    column_count=len(KEYFRAME_COLUMNS),
                    interactive=True,
                    label=f'keyframes (pixels of the {width}x{height} frame)',
                    elem_id='keyframes')
                with gr.Row():
                    preview_button = gr.Button('Preview layout', elem_id='preview')
                    clear_button = gr.Button('Clear', elem_id='clear')
            with gr.Column(scale=1):
                clip_name = gr.Textbox(
                    PAGE_CLIP_NAME, label='clip name (the folder of the clip in the zip)',
                    elem_id='clip-name')
                strip = gr.Image(label='layout preview', interactive=False, elem_id='strip')
                with gr.Row():
                    seed = gr.Number(0, label='seed', precision=0, minimum=0)
                    steps = gr.Number(
                        model.default_steps, label='sampling steps', precision=0, minimum=1)
                    guidance = gr.Number(model.default_guidance, label='guidance')
                generate_button = gr.Button('Generate', variant='primary', elem_id='generate')
                message = gr.Markdown('', elem_id='page-message')
                video = gr.Video(
                    label='generated | with the layout', autoplay=True, loop=True,
                    interactive=False, elem_id='video')
                scores = gr.JSON(label='scores of this clip', elem_id='scores')
                per_box = gr.Dataframe(
                    headers=['frame', 'instance', 'category', *model.scores],
                    label='per box',
                    interactive=False,
                    elem_id='per-box')
                files = gr.File(
                    label='downloads: MP4, GIF, zip (CocoVID + tracklet JSON, as tools/generate.py)',
                    file_count='multiple',
                    interactive=False,
                    elem_id='downloads')

        loaded = [table, strip, message, canvas, frame, clip_name]
        frame.change(show_frame, [table, frame], canvas)
        set_button.click(set_frame, [table, frame, canvas], [table, strip, message])
        file.upload(upload, file, loaded + [uploaded_clip, file])
        uploaded_clip.input(pick_uploaded, uploaded_clip, loaded)
        dataset_clip.input(pick_dataset, dataset_clip, loaded)
        preview_button.click(preview, table, [strip, message])
        clear_button.click(clear, None, loaded)
        generate_button.click(generate, [table, clip_name, seed, steps, guidance],
                              [video, scores, per_box, files, message])
    return page


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def launch(config: str,
           checkpoint: str,
           port: int = 7860,
           host: str = '127.0.0.1',
           device: str = 'cpu',
           block: bool = True,
           out_root: Optional[str] = None):
    """Load the model, build the page and serve it at http://host:port. With ``block=False``
    returns (page, model) with the server running in a thread (tests); ``page.close()`` stops
    it."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # no calls home
    model = PageModel(config, checkpoint, device=device, out_root=out_root)
    page = build_page(model)
    page.queue(default_concurrency_limit=1)  # one model: one generation at a time
    page.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        ssr_mode=False,
        quiet=not block,
        allowed_paths=[model.out_root])
    return page, model
