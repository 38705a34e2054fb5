using Microsoft.EntityFrameworkCore;

namespace AspireTune.ServiceDefaults.Data;

/// <summary>Inserts of a row with a caller-chosen key (an id, a name), where two requests may insert the same key at once.</summary>
public static class UniqueInserts
{
    /// <summary>
    /// Saves; when the save fails because <paramref name="taken"/> now finds the row (a concurrent insert of the same
    /// key won), clears the tracked changes and returns false, for a 409 or a re-read. Any other failure is rethrown.
    /// </summary>
    public static async Task<bool> SaveUnlessTakenAsync(this DbContext db, Func<CancellationToken, Task<bool>> taken, CancellationToken ct)
    {
        try
        {
            await db.SaveChangesAsync(ct);
            return true;
        }
        catch (DbUpdateException)
        {
            db.ChangeTracker.Clear();
            if (!await taken(ct))
                throw;
            return false;
        }
    }
}
