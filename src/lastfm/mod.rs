//! Last.fm 2.0 (and Libre.fm / other Audioscrobbler 2.0 servers) client.
