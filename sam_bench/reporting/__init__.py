"""Report building: entries (what a task's section is given), Markdown helpers, the writer."""
