"""Quality control: control materials and lots, QC results from analyzers and by hand,
Westgard multirules, corrective actions, release blocking, Levey-Jennings charts and the
monthly QC summary. An edge module: it acts on results through ``results.gates``."""
