package dev.weft.launcher;

import picocli.CommandLine;

/**
 * Turns an exception from a command into a clear one-paragraph error. Bad input (config, files,
 * budgets) is the user's to fix and gets its message alone; anything else is a bug in weft and
 * gets the stack trace too, so it can be reported.
 */
final class ErrorReport implements CommandLine.IExecutionExceptionHandler {
    @Override
    public int handleExecutionException(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        if (isUserError(e)) {
            cmd.getErr().println("weft " + cmd.getCommandName() + ": error: " + e.getMessage());
            return 2;
        }
        cmd.getErr().println("weft " + cmd.getCommandName() + ": internal error (please report): " + e);
        e.printStackTrace(cmd.getErr());
        return 1;
    }

    static boolean isUserError(Throwable e) {
        return e instanceof IllegalArgumentException
                || e instanceof java.io.IOException
                || e instanceof java.io.UncheckedIOException
                || e instanceof dev.weft.core.MemoryBudgetExceededException
                || e.getClass().getSimpleName().endsWith("ConfigException")
                || e.getClass().getSimpleName().endsWith("FormatException");
    }
}
