using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using AspireTune.ServiceDefaults.Artifacts;
using AspireTune.ServiceDefaults.Data;

namespace AspireTune.ServiceDefaults.Messaging;

/// <summary>
/// Marks an exception that no retry can cure (bad input in a message, a missing artifact): the message goes
/// to the error queue at once instead of being retried.
/// </summary>
public interface IPermanentFailure;

public static class PermanentFailures
{
    /// <summary>Failures that are properties of the message itself, not of the moment it was handled.</summary>
    public static bool IsPermanent(Exception exception) => exception is IPermanentFailure
        or ValidationException or JsonException or FormatException or InvalidDataException
        or ArtifactNotFoundException or ArtifactCorruptException or PathOutsideDataRootException
        || exception.InnerException is { } inner && IsPermanent(inner);
}
