def format_summary(result):
    return "\n".join(str(r) for r in result.runs) + "\n" + str(result.links)
