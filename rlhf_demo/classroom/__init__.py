"""Classroom mode: who is who (``identity``), whose runs are whose and which the teacher pinned
(``ownership``), and how much the class's labellers agree (``agreement``). Core only: no gradio."""
