package dev.weft.launcher.launch;

/** Describes a process's exit status the way a shell would: an exit code, or the signal that killed it. */
public final class ExitCause {
    private ExitCause() {}

    private static final String[] SIGNALS = {"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
            "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM"};

    /**
     * On Linux the JDK reports a process killed by signal s as exit value 128 + s (as shells do);
     * an exit code in that range set by the program itself reads the same and is described as both.
     */
    public static String describe(int exitValue) {
        if (exitValue > 128 && exitValue < 128 + SIGNALS.length)
            return "killed by signal " + (exitValue - 128) + " (" + SIGNALS[exitValue - 128] + "), exit value " + exitValue;
        if (exitValue > 128 && exitValue <= 128 + 64) return "killed by signal " + (exitValue - 128) + ", exit value " + exitValue;
        return "exit code " + exitValue;
    }
}
