//! GPT (via the `gpt` crate) and the protective or hybrid MBR CoreOS used.
//!
//! CONTRACT: `write_table(file, layout)`, `read_table(file)`, `relocate_backup(file)`.
