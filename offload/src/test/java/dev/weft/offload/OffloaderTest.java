package dev.weft.offload;

import dev.weft.core.DType;
import dev.weft.core.MemoryPool;
import dev.weft.core.Scope;
import dev.weft.core.Tensor;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OffloaderTest {
    @TempDir
    Path dir;

    private static Tensor ramp(MemoryPool pool, int n, float start) {
        Tensor t = Scope.outside(() -> Tensor.allocate(pool, DType.F32, "state", n));
        for (int i = 0; i < n; i++) t.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, start + i * 0.5f);
        return t;
    }

    private static float at(Tensor t, int i) {
        return t.data().getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i);
    }

    @ParameterizedTest
    @EnumSource(value = Tier.class, names = {"HOST", "DISK"})
    void bytesLeaveTheDeviceAndComeBackChangedOnlyByWhatWasWritten(Tier tier) {
        MemoryPool device = new MemoryPool("device", Long.MAX_VALUE);
        try (DiskTier disk = DiskTier.open(dir, 64L << 20, DiskTier.Io.AUTO, 2);
             Offloader off = new Offloader(device, new HostTier(Long.MAX_VALUE), disk, 1 << 20)) {
            int n = 100_000;
            Tensor a = ramp(device, n, 1), b = ramp(device, n, -7);
            long before = device.liveBytes();
            Offloader.Handle ha = off.offload(a, tier, "a"), hb = off.offload(b, tier, "b");
            off.flush();
            assertTrue(device.liveBytes() <= before - 2L * n * 4, "device memory is given back: " + device.liveBytes() + " of " + before);
            assertTrue((tier == Tier.HOST ? off.host().currentBytes() : disk.currentBytes()) >= 2L * n * 4);

            off.prefetch(ha);
            off.acquire(ha);
            assertEquals(1f, at(a, 0));
            assertEquals(1f + (n - 1) * 0.5f, at(a, n - 1));
            a.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, 3, 42f);
            off.release(ha, true);
            assertThrows(IllegalStateException.class, () -> off.release(ha, true));

            off.acquire(ha);
            off.acquire(ha); // nested: one unbind at the last release
            assertEquals(42f, at(a, 3));
            off.release(ha, false);
            assertEquals(42f, at(a, 3), "still bound after the inner release");
            off.release(ha, false);

            // touched outside the cycle: paged in, then written back and unbound by settle
            assertEquals(-7f, at(b, 0));
            b.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, 0, 5f);
            off.settle();
            assertTrue(!b.storage().isBound());
            off.acquire(hb);
            assertEquals(5f, at(b, 0));
            assertEquals(-7f + 0.5f, at(b, 1));
            off.release(hb, false);

            off.drop(ha);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> at(a, 0));
            assertTrue(e.getMessage().contains("'state'"), e.getMessage());
        }
    }

    /**
     * A write the filesystem refuses is thrown once, by the acquire that needs the bytes; closing the
     * offloader and the tier after it (as a try-with-resources around the failed run does) throws
     * nothing more, so the failure reaches the user as it was, and the scratch file goes.
     */
    @org.junit.jupiter.api.Test
    void aFailedDiskWriteIsThrownOnceAndClosingAfterItCleansUp() throws Exception {
        try (TinyFilesystem fs = TinyFilesystem.mount(dir.resolve("tiny"), 1)) {
            org.junit.jupiter.api.Assumptions.assumeTrue(fs != null, "mounting a tmpfs needs root");
            MemoryPool device = new MemoryPool("device", Long.MAX_VALUE);
            DiskTier disk = DiskTier.open(fs.path(), 64L << 20, DiskTier.Io.BUFFERED, 1);
            Tensor big = ramp(device, 3 << 18, 1); // 3 MiB on a 1 MiB filesystem
            DiskFullException full = assertThrows(DiskFullException.class, () -> {
                try (DiskTier d = disk; Offloader off = new Offloader(device, new HostTier(Long.MAX_VALUE), d, 1 << 20)) {
                    off.acquire(off.offload(big, Tier.DISK, "optimizer state"));
                }
            });
            assertTrue(full.getMessage().contains("is full: writing 3.0 MiB for 'optimizer state'"), full.getMessage());
            assertEquals(0, full.getSuppressed().length, "closing after the failure adds nothing: " + java.util.Arrays.toString(full.getSuppressed()));
            assertEquals(java.util.List.of(), disk.files(), "the scratch file is deleted");
            big.close();
        }
    }
}
