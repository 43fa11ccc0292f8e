//! Work in progress (graph helper): see INFER_API.md.
