//! Last.fm's read methods for the metadata and stats commands (`artist`,
//! `album`, `search`, `top`, `recent`): the commands ([`query`]), lenient
//! parsing and rendering of the replies ([`info`]), and the on-disk cache in
//! front of them ([`cache`]).

pub(crate) mod cache;
pub(crate) mod info;
pub(crate) mod query;
