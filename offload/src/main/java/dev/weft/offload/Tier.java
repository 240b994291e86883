package dev.weft.offload;

import java.util.Locale;

/** Where an offload policy puts a kind of training state: as the config spells it. */
public enum Tier {
    /** Stays in the compute pool: no offload. */
    DEVICE,
    HOST,
    DISK;

    /** Reads a config value: {@code none} (or {@code device}), {@code host}, {@code disk}. */
    public static Tier parse(String key, String value) {
        return switch (value.toLowerCase(Locale.ROOT)) {
            case "none", "device" -> DEVICE;
            case "host" -> HOST;
            case "disk" -> DISK;
            default -> throw new IllegalArgumentException(key + " must be none, host or disk, got '" + value + "'");
        };
    }

    /** The config spelling: none, host or disk. */
    public String configName() {
        return this == DEVICE ? "none" : name().toLowerCase(Locale.ROOT);
    }
}
