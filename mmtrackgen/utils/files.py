"""Files written whole or not at all: a reader sees the old file or the new one, never a part."""
import contextlib
import json
import os


def write_text_atomic(path: str, text: str) -> str:
    """Write ``text`` to ``path`` through a temporary file in the same folder, flushed to disk,
    and one rename; on any failure the temporary file is removed and ``path`` is untouched."""
    tmp = f'{path}.tmp{os.getpid()}'
    try:
        with open(tmp, 'w', encoding='utf-8', newline='\n') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def write_json_atomic(path: str, obj, **dump_kwargs) -> str:
    """:func:`write_text_atomic` of ``json.dumps(obj, **dump_kwargs)``."""
    return write_text_atomic(path, json.dumps(obj, **dump_kwargs))
