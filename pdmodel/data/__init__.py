"""Published irAE data: vocabulary mapping, schema, validation and the bundled tables.

The bundled files ``pdmodel/data/irae_{incidence,timing,management}.csv`` are the curated
shared tables (``shared/data``) with harmonised columns added by
``pdmodel/data/build_dataset.py``; see ``docs/data.md``.  The bundled loaders
(:func:`load_incidence`, :func:`load_timing`, :func:`load_management`) are for the fit pipeline
and the command line; the model layers never read them.

A user's own incidence table uses the long format of :data:`INCIDENCE_SCHEMA` (one row per arm
× organ × grade band); :func:`validate_incidence` reports every problem in it at once (pandera
schemas, ``lazy=True``), with spreadsheet line numbers (header = line 1, first data row =
line 2), and never raises on bad data.  :func:`check_file` is the library side of
``pdmodel data check FILE.csv`` (``pdmodel.cli.data``); :func:`load_user_incidence` checks a
file by the same rules and harmonises it as the bundled table, for ``pdmodel fit``.

Modules, in the order they build on each other: ``_vocabulary`` (published terms → pdmodel's
vocabulary), ``_cells`` (cell parsing), ``_schema`` (columns), ``_validate`` (pandera schemas
and issues), ``_read`` (CSV files), ``_harmonise`` (the added columns, for the build script and
user tables), ``_bundled`` (the bundled tables), ``_check`` (file check and summary) and
``_user`` (a user's table on the bundled path).
"""

from ..errors import DataError as DataError
from ..errors import DataFileError as DataFileError
from ..errors import DataIssue as DataIssue
from ..errors import format_issues as format_issues
from ._bundled import bundled_incidence_as_schema as bundled_incidence_as_schema
from ._bundled import load_incidence as load_incidence
from ._bundled import load_management as load_management
from ._bundled import load_timing as load_timing
from ._bundled import management_counts as management_counts
from ._check import check_file as check_file
from ._coverage import COVERAGE_COLUMNS as COVERAGE_COLUMNS
from ._coverage import coverage as coverage
from ._coverage import coverage_markdown as coverage_markdown
from ._harmonise import usable_for_fit as usable_for_fit
from ._read import read_csv_cells as read_csv_cells
from ._read import read_incidence_csv as read_incidence_csv
from ._schema import INCIDENCE_SCHEMA as INCIDENCE_SCHEMA
from ._schema import TIMING_SCHEMA as TIMING_SCHEMA
from ._schema import ColumnSpec as ColumnSpec
from ._user import load_user_incidence as load_user_incidence
from ._user import load_user_timing as load_user_timing
from ._validate import incidence_table_schema as incidence_table_schema
from ._validate import timing_table_schema as timing_table_schema
from ._validate import validate_incidence as validate_incidence
from ._validate import validate_timing as validate_timing
from ._vocabulary import ASSUMED_REGIMENS as ASSUMED_REGIMENS
from ._vocabulary import backbone_name as backbone_name
from ._vocabulary import course_weeks as course_weeks
from ._vocabulary import events_from_percent as events_from_percent
from ._vocabulary import followup_weeks as followup_weeks
from ._vocabulary import grade_range as grade_range
from ._vocabulary import organ_model as organ_model
from ._vocabulary import round_half_up as round_half_up
from ._vocabulary import split_agents as split_agents
from ._vocabulary import term_level as term_level
from ._vocabulary import treatment_weeks as treatment_weeks
from ._vocabulary import tumour_type as tumour_type
from ._vocabulary import window_weeks as window_weeks

__all__ = [
    # published terms → pdmodel's vocabulary
    "organ_model", "term_level", "grade_range", "followup_weeks", "round_half_up",
    "events_from_percent", "ASSUMED_REGIMENS", "backbone_name", "course_weeks", "split_agents",
    "treatment_weeks", "tumour_type", "window_weeks",
    # schema and validation
    "INCIDENCE_SCHEMA", "TIMING_SCHEMA", "ColumnSpec", "validate_incidence", "validate_timing",
    "incidence_table_schema", "timing_table_schema",
    "DataIssue", "DataError", "DataFileError", "format_issues",
    # CSV files
    "read_csv_cells", "read_incidence_csv", "check_file", "coverage", "coverage_markdown",
    "COVERAGE_COLUMNS",
    # the bundled tables, and a user's tables on their path
    "load_incidence", "load_timing", "load_management", "management_counts",
    "bundled_incidence_as_schema",
    "load_user_incidence", "load_user_timing", "usable_for_fit",
]
