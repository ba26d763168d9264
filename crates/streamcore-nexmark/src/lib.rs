//! The Nexmark benchmark for streamcore (work in progress).
