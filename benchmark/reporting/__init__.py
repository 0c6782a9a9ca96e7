"""Reports, read as rliable does: records -> statistics on (runs x tasks) arrays -> frames -> tables and
figures -> the paper's numbers beside ours -> README sections -> the README writer
(:func:`benchmark.reporting.readme.write_report`). :mod:`benchmark.reporting.readme` lists the rooms in
their order."""
