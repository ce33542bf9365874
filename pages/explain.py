"""explain page (placeholder)."""
import streamlit as st

st.title("Explain")
st.info("Coming soon.")
