"""OTTL's editors and converters (contrib `pkg/ottl/ottlfuncs`), registered in `registry`.

Importing this package registers them all: each module adds its functions with `@editor` or
`@converter`, declaring its parameters as the Collector declares them (getter kinds, literals).
"""

from pipelines.ottl.functions import (  # noqa: F401
    converters,
    editors,
    hashing,
    metrics,
    parsing,
    strings,
    time_funcs,
    xml_funcs,
)
