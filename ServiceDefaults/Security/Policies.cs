namespace AspireTune.ServiceDefaults.Security;

/// <summary>
/// The three roles and their authorization policies. Roles nest: an admin is an operator, an operator a reader.
/// </summary>
public static class Policies
{
    /// <summary>Read anything: lists, results, reports, model inference.</summary>
    public const string Reader = "reader";

    /// <summary>Submit and cancel work: runs, jobs, experiments, ingestion.</summary>
    public const string Operator = "operator";

    /// <summary>Import and delete models and data; manage endpoints that hold secrets.</summary>
    public const string Admin = "admin";

    internal static readonly string[] ReaderRoles = [Reader, Operator, Admin];
    internal static readonly string[] OperatorRoles = [Operator, Admin];
    internal static readonly string[] AdminRoles = [Admin];
}
