//! XML documents of the three dialects (being written).
