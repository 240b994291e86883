package dev.weft.launcher;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code weft} command line. Each verb is its own class; this one only lists them. */
@Command(name = "weft", mixinStandardHelpOptions = true, version = "weft 0.1.0",
        description = "Distributed training for the JVM.",
        subcommands = {TrainCommand.class, LaunchCommand.class, PlanCommand.class, GenerateCommand.class, PrepareCommand.class, ExportCommand.class, BenchCommand.class, CheckpointCommand.class,
                dev.weft.launcher.snapshot.SnapshotCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /** The configured command line; tests drive it directly. */
    public static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main());
        cl.setExecutionExceptionHandler(new ErrorReport());
        return cl;
    }
}
