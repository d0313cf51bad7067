import numpy as np

from mmtrackgen.visualization import contact_sheet, draw_tracklets, save_image, slot_colours


def test_draw_tracklets_outlines_visible_boxes_in_slot_colours():
    frames = np.zeros((2, 10, 20, 3), dtype=np.uint8)
    boxes = np.array([[[0.25, 0.2, 0.75, 0.8], [0, 0, 1, 1]]] * 2, dtype=np.float32)
    visible = np.array([[True, False], [False, False]])
    out = draw_tracklets(frames, boxes, visible, upscale=2)
    assert out.shape == (2, 20, 40, 3)
    colour = slot_colours(2)[0]
    assert (out[0, 4, 10:30] == colour).all()  # top edge of the box at y = 0.2 * 20
    assert (out[0, 12, 20:28] == 0).all()  # inside stays untouched (text is top-left)
    assert (out[1] == 0).all()  # nothing visible in frame 1


def test_contact_sheet_lays_out_rows_and_writes_png(tmp_path):
    clips = [np.full((3, 8, 10, 3), 50, np.uint8), np.full((2, 6, 10, 3), 90, np.uint8)]
    sheet = contact_sheet(clips, titles=['a', 'b'], gap=2, title_height=12)
    assert sheet.shape == (2 + (8 + 12 + 2) + (6 + 12 + 2), 2 + 3 * 12, 3)
    assert (sheet[14:22, 2:12] == 50).all()
    save_image(str(tmp_path / 's.png'), sheet)
    assert (tmp_path / 's.png').stat().st_size > 0
    assert len({tuple(c) for c in slot_colours(12)}) == 12
