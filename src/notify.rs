//! Telling systemd how the daemon is doing (`sd_notify`): not built yet.
