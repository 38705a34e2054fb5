using System.Text;
using System.Text.Json;

namespace AspireTune.FineTuning.Tests;

/// <summary>Small, varied training sets: no two lines are near duplicates of each other.</summary>
internal static class TestData
{
    private static readonly string[] Items = ["soup", "bread", "service", "coffee", "salad", "music", "table", "dessert", "pasta", "wine", "room", "staff"];
    private static readonly string[] Good = ["excellent", "lovely", "superb", "delightful", "wonderful"];
    private static readonly string[] Bad = ["awful", "terrible", "dreadful", "horrible", "disappointing"];

    /// <summary>Sentiment examples in the chat format, alternating positive and negative.</summary>
    public static List<string> ChatLines(int count, int offset = 0)
    {
        var lines = new List<string>();
        for (var i = offset; i < offset + count; i++)
        {
            var positive = i % 2 == 0;
            var words = positive ? Good : Bad;
            var text = $"The {Items[i % Items.Length]} was {words[i % words.Length]} and the {Items[(i * 7 + 3) % Items.Length]} seemed {words[(i / 5) % words.Length]} on visit {i}";
            lines.Add(JsonSerializer.Serialize(new
            {
                messages = new object[]
                {
                    new { role = "system", content = "Classify the sentiment." },
                    new { role = "user", content = text },
                    new { role = "assistant", content = positive ? "positive" : "negative" },
                },
            }));
        }
        return lines;
    }

    /// <summary>The same examples as preference pairs in the hosted DPO format: the right label preferred, the wrong one not.</summary>
    public static List<string> PreferenceLines(int count, int offset = 0) =>
        [.. ChatLines(count, offset).Select(line =>
        {
            var messages = JsonDocument.Parse(line).RootElement.GetProperty("messages").EnumerateArray().ToList();
            var answer = messages[^1].GetProperty("content").GetString()!;
            return JsonSerializer.Serialize(new
            {
                input = new { messages = messages.SkipLast(1) },
                preferred_output = new[] { new { role = "assistant", content = answer } },
                non_preferred_output = new[] { new { role = "assistant", content = answer == "positive" ? "negative" : "positive" } },
            });
        })];

    public static byte[] Jsonl(IEnumerable<string> lines) => Encoding.UTF8.GetBytes(string.Join("\n", lines) + "\n");
}
