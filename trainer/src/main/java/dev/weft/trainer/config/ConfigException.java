package dev.weft.trainer.config;

/** A config that cannot be used; the message names the key, the value and what is allowed. */
public final class ConfigException extends IllegalArgumentException {
    public ConfigException(String message) {
        super(message);
    }
}
