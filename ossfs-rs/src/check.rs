//! Operator diagnosis (being written).
