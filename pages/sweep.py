"""sweep page (placeholder)."""
import streamlit as st

st.title("Sweep")
st.info("Coming soon.")
