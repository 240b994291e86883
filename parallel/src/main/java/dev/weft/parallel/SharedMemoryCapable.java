package dev.weft.parallel;

/** A fabric that can give a group a {@link SharedMemoryPath} (when all its ranks are on one host). */
interface SharedMemoryCapable {
    /** The path for {@code group}, or null when its ranks do not all share this host. */
    SharedMemoryPath sharedMemory(FabricGroup group);
}
