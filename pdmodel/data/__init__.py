"""Published irAE data: vocabulary mapping, schema, validation and the bundled tables.

The bundled loaders (:func:`load_incidence`, :func:`load_timing`, :func:`load_management`) are
for the fit pipeline and the command line; the model layers never read them.
"""

from ._data import INCIDENCE_SCHEMA as INCIDENCE_SCHEMA
from ._data import TIMING_SCHEMA as TIMING_SCHEMA
from ._data import ColumnSpec as ColumnSpec
from ._data import bundled_incidence_as_schema as bundled_incidence_as_schema
from ._data import check_file as check_file
from ._data import data_app as data_app
from ._data import load_incidence as load_incidence
from ._data import load_management as load_management
from ._data import load_timing as load_timing
from ._data import read_csv_cells as read_csv_cells
from ._data import read_incidence_csv as read_incidence_csv
from ._data import validate_incidence as validate_incidence
from ._data import validate_timing as validate_timing

__all__ = [
    "INCIDENCE_SCHEMA", "TIMING_SCHEMA", "ColumnSpec", "validate_incidence", "validate_timing",
    "read_csv_cells", "read_incidence_csv", "load_incidence", "load_timing", "load_management",
    "bundled_incidence_as_schema", "check_file", "data_app",
]
