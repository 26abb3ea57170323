"""Streamlit helpers shared by the dashboard's entry point and its pages (no computation here)."""
