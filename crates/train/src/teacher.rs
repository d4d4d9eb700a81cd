//! The teacher network (being ported).
