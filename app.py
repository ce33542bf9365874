"""RNN Gradient Lab — placeholder entry point until the pages land."""
import streamlit as st

st.title("RNN Gradient Lab")
