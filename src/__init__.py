"""The project's code; ``src`` is the import root (``_target_: src.models....``).

Importing it registers the ``${data_spec:KEY}`` resolver of the model configs
(``src/data/spec.py``) and the ``${tool_help:}`` of ``--help`` (``src/utils/tool_help.py``),
so every entry point, test and notebook has them before a config is resolved.
"""

from src.data.spec import register as _register_data_spec
from src.utils.tool_help import register as _register_tool_help

_register_data_spec()
_register_tool_help()
