"""The dashboard's pages (one file each, run by ``st.navigation``) and the sections they share."""
