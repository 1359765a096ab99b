"""RLHF Lab: `python app.py` serves the dashboard (http://127.0.0.1:7860 locally; on Spaces as configured)."""

from rlhf_demo.ui.app import build_demo, launch

demo = build_demo()

if __name__ == "__main__":
    launch(demo)
