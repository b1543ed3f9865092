"""The comparison report: document blocks, Markdown and HTML renderers, figures."""
