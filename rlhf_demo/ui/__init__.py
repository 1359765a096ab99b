"""The Gradio face of RLHF Lab: one module per tab. Only this package imports gradio."""
