package dev.weft.trainer.config;

import dev.weft.core.UserError;

/** A config that cannot be used; the message names the key, the value and what is allowed. */
public final class ConfigException extends IllegalArgumentException implements UserError {
    public ConfigException(String message) {
        super(message);
    }
}
