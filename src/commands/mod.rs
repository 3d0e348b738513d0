//! The subcommands, on top of the library: nothing below `cli` and
//! `commands` uses them (docs/design.md, "Layers").

pub(crate) mod rules;
