"""Plain dataclasses, enums, grading scales and errors. No third-party imports."""
